"""dynrnn.preprocess"""
