from .errors import ImageReadError, InvalidInputError, MaskfaceError, UnknownNameError
from .gallery.gallery import Gallery
from .geometry.aligned import aligned_face
from .geometry.analysers import create_analyser, detect_faces, list_analysers
from .geometry.face import Face, Pose
from .geometry.locate import LocatedFace, cut_chip, locate_faces
from .imageio import read_image, write_image
from .render.registry import create_renderer, list_renderers
from .styles import create_style, list_styles
from .styles.base import WEAR_STYLES
from .synthesis import MaskingResult, mask_image, select_faces
from .transforms import AddMask

__version__: str
