"""dynrnn.metrics"""
