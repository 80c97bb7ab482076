import CMoRAgent

// Header section "Errors".

@_cdecl("moragent_status_string")
public func moragentStatusString(_ status: moragent_status) -> UnsafePointer<CChar> {
    StatusNames.name(of: status)
}

@_cdecl("moragent_last_error")
public func moragentLastError() -> UnsafePointer<CChar> {
    LastError.message
}
