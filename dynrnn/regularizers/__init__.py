"""dynrnn.regularizers"""
