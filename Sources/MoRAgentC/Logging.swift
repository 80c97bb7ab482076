import CMoRAgent

// Header section "Logging".

@_cdecl("moragent_set_log_callback")
public func moragentSetLogCallback(_ callback: moragent_log_fn?, _ user: UnsafeMutableRawPointer?) {
    LogSink.set(callback, user)
}
