public let moragentVersionString = "0.3.0"
