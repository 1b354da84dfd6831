"""Focus Track (issue 18, SteReFo section 4): a focus puller that follows a subject through a clip.

* :mod:`.tracker`: the subject's box frame to frame (OpenCV CSRT or KCF), loss detection against the
  last good template, re-detection by template matching in a widening window.
* :mod:`.sampling`: a focus distance per frame from the planar depth inside the box, robust to what
  enters the box (the depth mode nearest the previous focus; hold while hidden).
* :mod:`.smoothing`: a focus puller's follow in dioptres (critically damped, rack-speed and
  acceleration limits, a dead-band inside the depth of field).
* :mod:`.evaluate`: the held-out evaluation against two baselines (first-frame box, centre autofocus).

numpy and OpenCV only: tracking is classical matching at the I/O edge, no torch needed.
"""
