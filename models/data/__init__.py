"""torch Datasets over the Cycles-rendered datasets of ``blender_scenes.generate``.

Each kind has its reader; all return dicts of float32 tensors (shapes and units in each module)
and work with a ``DataLoader`` and workers::

    from torch.utils.data import DataLoader
    from models.data import Augment, FocalStackDataset
    data = FocalStackDataset("data/fod/train", split="train", augment=Augment(crop=(128, 128), permute=True))
    loader = DataLoader(data, batch_size=8, shuffle=True, num_workers=4)

Opening a dataset reads its manifest only; each sample is read when a worker asks for it. A list
of folders (shards rendered apart) reads as one dataset, and ``verify=True`` checks each sample's
checksums on its first read (see :class:`DatasetFolder`)::

    data = FocalStackDataset(["/shared/fod/part0", "/shared/fod/part1"], split="train", verify=True)
"""

from .augment import Augment, ColourJitter, corrupt_depth
from .deeplens import DeepLensDataset
from .focal_stack import FocalStackDataset
from .folder import DatasetFolder
from .stereo import StereoDataset
from .sweep import SweepDataset

__all__ = ["Augment", "ColourJitter", "corrupt_depth", "DatasetFolder", "DeepLensDataset", "FocalStackDataset",
           "StereoDataset", "SweepDataset"]
