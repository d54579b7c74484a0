"""dynrnn.io"""
