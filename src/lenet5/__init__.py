"""lenet5: the LeNet-5 family of convolutional networks, written from scratch in NumPy."""

__version__ = "0.1.0"


def __getattr__(name):
    # `lenet5.load` is imported on first use, so that `import lenet5` stays light.
    if name == "load":
        from .run.classifier import load

        return load
    raise AttributeError(f"module 'lenet5' has no attribute {name!r}")
