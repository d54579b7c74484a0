"""dynrnn.datasets"""
