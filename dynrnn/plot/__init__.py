"""dynrnn.plot"""
