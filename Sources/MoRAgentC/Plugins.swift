import CMoRAgent

// Header section "Router plugins".

@_cdecl("moragent_plugin_load")
public func moragentPluginLoad(_ path: UnsafePointer<CChar>?) -> moragent_status {
    withStatus("moragent_plugin_load") { try PluginCalls.load(path) }
}

@_cdecl("moragent_router_create_kind")
public func moragentRouterCreateKind(_ name: UnsafePointer<CChar>?, _ configJSON: UnsafePointer<CChar>?, _ expertCount: Int,
                                     _ outRouter: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_router_create_kind") { try PluginCalls.createKind(name, configJSON, expertCount, outRouter) }
}
