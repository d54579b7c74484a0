"""dynrnn.training"""
