import MoRAgent

// Header section "Memory: the buffer cache".

@_cdecl("moragent_buffer_cache_set_limit")
public func moragentBufferCacheSetLimit(_ bytes: UInt64) {
    TensorBufferCache.limit = Int(clamping: bytes)
}

@_cdecl("moragent_buffer_cache_kept_bytes")
public func moragentBufferCacheKeptBytes() -> UInt64 {
    UInt64(TensorBufferCache.keptBytes)
}
