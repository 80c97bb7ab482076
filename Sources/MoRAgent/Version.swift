public let moragentVersionString = "0.1.0"
