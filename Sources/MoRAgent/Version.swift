public let moragentVersionString = "0.4.0"
