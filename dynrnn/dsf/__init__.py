"""dynrnn.dsf"""
