"""lenet5: the LeNet-5 family of convolutional networks, written from scratch in NumPy."""

__version__ = "0.1.0"
