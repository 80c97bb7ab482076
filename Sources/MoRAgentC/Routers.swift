import CMoRAgent

// Header section "Routers".

@_cdecl("moragent_router_create_fixed")
public func moragentRouterCreateFixed(_ expertCount: Int, _ expert: Int32, _ outRouter: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_router_create_fixed") { try RouterCalls.createFixed(expertCount, expert, outRouter) }
}

@_cdecl("moragent_phase_router_params_default")
public func moragentPhaseRouterParamsDefault(_ params: UnsafeMutablePointer<moragent_phase_router_params>?) -> moragent_status {
    withStatus("moragent_phase_router_params_default") { try RouterCalls.defaultPhaseParams(params) }
}

@_cdecl("moragent_router_create_phase")
public func moragentRouterCreatePhase(_ modelHiddenSize: Int, _ params: UnsafePointer<moragent_phase_router_params>?, _ seed: UInt64,
                                      _ outRouter: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_router_create_phase") { try RouterCalls.createPhase(modelHiddenSize, params, seed, outRouter) }
}

@_cdecl("moragent_router_phase_save")
public func moragentRouterPhaseSave(_ router: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> moragent_status {
    withStatus("moragent_router_phase_save") { try RouterCalls.savePhase(router, path) }
}

@_cdecl("moragent_router_phase_load")
public func moragentRouterPhaseLoad(_ path: UnsafePointer<CChar>?, _ outRouter: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_router_phase_load") { try RouterCalls.loadPhase(path, outRouter) }
}

@_cdecl("moragent_router_create_trajectory")
public func moragentRouterCreateTrajectory(_ inner: OpaquePointer?, _ outRouter: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_router_create_trajectory") { try RouterCalls.createTrajectory(inner, outRouter) }
}

@_cdecl("moragent_router_create_callback")
public func moragentRouterCreateCallback(_ expertCount: Int, _ fn: moragent_router_fn?, _ user: UnsafeMutableRawPointer?,
                                         _ outRouter: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_router_create_callback") { try RouterCalls.createCallback(expertCount, fn, user, outRouter) }
}

@_cdecl("moragent_router_free")
public func moragentRouterFree(_ router: OpaquePointer?) -> moragent_status {
    withStatus("moragent_router_free") { try RouterCalls.free(router) }
}

@_cdecl("moragent_router_expert_count")
public func moragentRouterExpertCount(_ router: OpaquePointer?, _ outCount: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_router_expert_count") { try RouterCalls.expertCount(router, outCount) }
}

// Header section "Token and Mixture-of-Roles routers" (0.3).

@_cdecl("moragent_router_create_token")
public func moragentRouterCreateToken(_ experts: OpaquePointer?, _ topK: Int, _ perLayer: Int32, _ seed: UInt64,
                                      _ outRouter: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_router_create_token") { try RouterCalls.createToken(experts, topK, perLayer, seed, outRouter) }
}

@_cdecl("moragent_mor_params_default")
public func moragentMoRParamsDefault(_ params: UnsafeMutablePointer<moragent_mor_params>?) -> moragent_status {
    withStatus("moragent_mor_params_default") { try RouterCalls.defaultMoRParams(params) }
}

@_cdecl("moragent_router_create_roles")
public func moragentRouterCreateRoles(_ engine: OpaquePointer?, _ params: UnsafePointer<moragent_mor_params>?, _ seed: UInt64,
                                      _ outRouter: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_router_create_roles") { try RouterCalls.createRoles(engine, params, seed, outRouter) }
}

@_cdecl("moragent_router_roles_save")
public func moragentRouterRolesSave(_ router: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> moragent_status {
    withStatus("moragent_router_roles_save") { try RouterCalls.saveRoles(router, path) }
}

@_cdecl("moragent_router_roles_load")
public func moragentRouterRolesLoad(_ engine: OpaquePointer?, _ path: UnsafePointer<CChar>?,
                                    _ outRouter: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_router_roles_load") { try RouterCalls.loadRoles(engine, path, outRouter) }
}
