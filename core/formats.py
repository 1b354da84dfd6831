"""The file formats core reads and writes, by extension, and what it does with non-finite pixels.

Plain constants, no I/O library: the command line states them in ``--help`` without importing
OpenCV, OpenEXR or torch.
"""

IMAGE_EXTENSIONS = (".exr", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
MAP_EXTENSIONS = (".exr", ".pfm", ".npy")
NAN_POLICIES = ("error", "zero", "nearest")
