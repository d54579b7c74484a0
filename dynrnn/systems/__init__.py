"""dynrnn.systems"""
