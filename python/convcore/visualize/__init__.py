"""convcore.visualize: seeing what a convnet learns, with the gradients of `convcore.gradients`.

The pictures of the lecture's last part, for any zoo model (with your weights), imported ONNX models, and by default
the bundled pretrained EfficientNet-Lite0 and sample photos:

- `filters`: the first layer's kernels as colour tiles (Krizhevsky et al. 2012's figure);
- `activations`: a layer's feature maps for an image;
- `saliency`: the image-specific class saliency map (Simonyan et al. 2013) and Grad-CAM (Selvaraju et al. 2017);
- `top_patches`: the image regions that excite a channel most, beside their guided-backpropagation projections
  (Zeiler & Fergus 2014);
- `class_model`: class model images by gradient ascent on a class score with L2 and blur regularization (Simonyan
  et al. 2013);
- `feature`: feature visualization (Olah, Mordvintsev & Schubert 2017): a decorrelated Fourier parameterization and
  transformation robustness, for neuron, channel and layer objectives.

Each returns a dict of file name -> uint8 RGB (or grey) numpy image and, given ``out=`` (a folder), writes them as
PNG files (Pillow). Randomness comes from ``seed`` (same seed, same pictures); the long optimizations draw a progress
bar on stderr when it is a terminal. `montage` combines pictures into one captioned figure.

Example:
    >>> from convcore import visualize
    >>> pictures = visualize.class_model(targets=["dumbbell", "cup", "dalmatian"], out="figures")
    >>> sorted(pictures)
    ['class_cup.png', 'class_dalmatian.png', 'class_dumbbell.png']
"""

from ._common import DEFAULT_MODEL, MAX_SIZE, file_name, grid, montage, resolve, save_png
from ._maps import SALIENCY_METHODS, activations, filters, layers_at, receptive_field, saliency, top_patches
from ._optimize import AffineSampler, FourierImage, class_model, feature, gaussian_blur

__all__ = ["SALIENCY_METHODS", "filters", "activations", "saliency", "top_patches", "class_model", "feature",
           "montage", "grid", "save_png", "receptive_field", "layers_at", "file_name", "resolve", "DEFAULT_MODEL",
           "MAX_SIZE", "FourierImage", "AffineSampler", "gaussian_blur"]
