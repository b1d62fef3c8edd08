from .errors import ImageReadError, MaskfaceError
from .geometry.analysers import create_analyser, detect_faces, list_analysers
from .geometry.face import Face, Pose
from .imageio import read_image, write_image
from .render.registry import create_renderer, list_renderers
from .styles import create_style, list_styles
from .styles.base import WEAR_STYLES
from .synthesis import MaskingResult, mask_image
from .transforms import AddMask

__version__: str
