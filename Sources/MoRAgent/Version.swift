public let moragentVersionString = "0.2.0"
