import CMoRAgent

// Header section "Version".

@_cdecl("moragent_version")
public func moragentVersion() -> UnsafePointer<CChar> {
    LibraryVersion.string
}

@_cdecl("moragent_version_number")
public func moragentVersionNumber() -> Int32 {
    LibraryVersion.number
}
