"""dynrnn.scan"""
