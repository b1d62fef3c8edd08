"""The 2D renderer: a mask texture warped piecewise over the dense face mesh.

Every mesh triangle carries its own affine map from the texture canvas, so the mask follows
the nose, cheeks and jaw at any head pose; triangles turned away from the camera are dropped
and the rest drawn far to near, so the far cheek hides behind the nose at large yaw. The mask
is then lit with the light estimated on the skin, given the photo's white balance and noise,
and composited with soft edges and a little light wrap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache

import cv2
import numpy as np

from maskface.geometry.face import Face
from maskface.geometry.reference import LIPS, reference
from maskface.render import lighting as lt
from maskface.render.layout import CANVAS_CM, ear_points, face_frame, mask_mesh
from maskface.render.raster import Raster, rasterize, sample
from maskface.styles import MaskStyle
from maskface.styles.base import MaskTexture

_MIN_TEXTURE, _MAX_TEXTURE = 128, 1024


@dataclass
class MaskLayer:
    """A rendered mask for one face: colour and coverage over an image region."""

    region: tuple[int, int, int, int]
    rgb: np.ndarray  # float32 (h, w, 3) sRGB in [0, 1]
    alpha: np.ndarray  # float32 (h, w) in [0, 1]
    info: dict = field(default_factory=dict)

    def composite(self, image: np.ndarray, alpha_out: np.ndarray | None = None) -> None:
        """Blend the layer into ``image`` (uint8 RGB) in place; also max it into ``alpha_out``."""
        x0, y0, x1, y1 = self.region
        dst = image[y0:y1, x0:x1].astype(np.float32) / 255.0
        a = self.alpha[..., None]
        out = dst * (1.0 - a) + self.rgb * a
        image[y0:y1, x0:x1] = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if alpha_out is not None:
            view = alpha_out[y0:y1, x0:x1]
            np.maximum(view, np.round(self.alpha * 255).astype(np.uint8), out=view)


def texture_size(face: Face) -> int:
    """Canvas size giving about one texel per image pixel (a power of two, for caching)."""
    want = CANVAS_CM * face.scale * 1.2
    size = 1 << int(np.ceil(np.log2(max(want, 1.0))))
    return int(np.clip(size, _MIN_TEXTURE, _MAX_TEXTURE))


@cache
def _mouth_bridge() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mouth vertices, the vertices around them, and weights spreading the latter's offsets."""
    ref = reference().mesh
    mouth = np.array(sorted(set(LIPS) | {13, 14, 78, 308}))
    dist = np.linalg.norm(ref[mouth, None, :2] - ref[None, :, :2], axis=2)
    around = np.flatnonzero((dist.min(axis=0) > 0.4) & (dist.min(axis=0) < 2.5))
    w = np.exp(-((dist[:, around] / 1.5) ** 2))
    return mouth, around, w / w.sum(axis=1, keepdims=True)


def project_mesh(face: Face) -> np.ndarray:
    """Image positions (V, 3) of every mask-mesh vertex: the face mesh plus the jaw rings.

    The mouth's own vertices are replaced by where the head pose puts them, shifted like the
    skin around them: a mask is stretched over the lips, not pulled into a smile or an open
    mouth.
    """
    mm = mask_mesh()
    ref = reference().mesh
    n = len(ref)
    pts = np.empty((len(mm.vertices), 3))
    pts[:n] = face.mesh[:n]
    mouth, around, weights = _mouth_bridge()
    rigid = ref @ face.rotation.T * face.scale + face.translation
    pts[mouth] = rigid[mouth] + weights @ (face.mesh[around] - rigid[around])
    parent = mm.parent[n:]
    offset = (mm.vertices[n:] - ref[parent]) @ face.rotation.T * face.scale
    pts[n:] = face.mesh[parent] + offset
    return pts


def _triangles_under(alpha: np.ndarray, uv_px: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Triangles touching the drawn part of the texture (sampled at corners, edges, centre)."""
    drawn = cv2.dilate((alpha > 1e-3).astype(np.uint8), np.ones((5, 5), np.uint8))
    corners = uv_px[triangles]  # (T, 3, 2)
    probes = np.concatenate(
        [corners, (corners + np.roll(corners, 1, axis=1)) / 2, corners.mean(axis=1)[:, None]],
        axis=1,
    )
    size = alpha.shape[0]
    xy = np.clip(np.round(probes).astype(np.int32), 0, size - 1)
    return triangles[drawn[xy[..., 1], xy[..., 0]].any(axis=1)]


def normal_map(normals: np.ndarray, size: int) -> np.ndarray:
    """Per-vertex normals (V, 3) of the mask mesh painted on the canvas: (size, size, 3)."""
    mm = mask_mesh()
    uv = mm.uv * size
    full = rasterize(uv, np.zeros(len(uv)), uv, mm.triangles, (size, size), pad=0)
    out = np.zeros((size, size, 3), np.float32)
    x0, y0, x1, y1 = full.region
    out[y0:y1, x0:x1] = full.interpolate(normals)
    # Spread normals a few texels past the mesh edge so bilinear sampling at the rim is clean.
    filled = (np.linalg.norm(out, axis=2) > 0).astype(np.uint8)
    for _ in range(3):
        grown = cv2.dilate(out, np.ones((3, 3), np.uint8))
        shrunk = cv2.erode(out, np.ones((3, 3), np.uint8))
        pick = np.where(np.abs(grown) > np.abs(shrunk), grown, shrunk)
        out = np.where(filled[..., None] > 0, out, pick)
        filled = (np.linalg.norm(out, axis=2) > 0).astype(np.uint8)
    return out


@cache
def _face_normal_map(size: int) -> np.ndarray:
    return normal_map(mask_mesh().normals, size)


class Renderer2D:
    """Warps style textures onto faces; see the module docstring."""

    name = "2d"

    def __init__(self, edge_softness: float = 0.6, light_wrap: float = 0.3) -> None:
        self.edge_softness = edge_softness
        self.light_wrap = light_wrap

    def project(self, face: Face) -> np.ndarray:
        """Image positions (V, 3) of the mask mesh's vertices for ``face``."""
        return project_mesh(face)

    def normal_map(self, size: int) -> np.ndarray:
        """Reference-frame normals of the surface the mask lies on, painted on the canvas."""
        return _face_normal_map(size)

    def render(
        self,
        image: np.ndarray,
        face: Face,
        style: MaskStyle,
        wear: str,
        rng: np.random.Generator,
    ) -> MaskLayer | None:
        """Draw ``style`` worn as ``wear`` on ``face``; None when no part of it is visible."""
        size = texture_size(face)
        texture = style.draw(face_frame(wear, size), rng)
        layer = self.render_texture(image, face, texture, rng)
        if layer is not None:
            layer.info["style"] = texture.params
        return layer

    def render_texture(
        self,
        image: np.ndarray,
        face: Face,
        texture: MaskTexture,
        rng: np.random.Generator,
    ) -> MaskLayer | None:
        """Render a drawn texture onto ``face``; None when no part of it is visible."""
        mm = mask_mesh()
        size = texture.rgba.shape[0]
        uv_px = mm.uv * size
        if "triangles" not in texture.derived:
            texture.derived["triangles"] = _triangles_under(texture.rgba[..., 3], uv_px,
                                                            mm.triangles)
        tris = texture.derived["triangles"]
        pts = self.project(face)
        raster = rasterize(pts[:, :2], pts[:, 2], uv_px, tris, image.shape)
        if raster is None:
            return None
        light = self.estimate_lighting(image, face)

        rgba = sample(texture.rgba, raster)
        alpha = rgba[..., 3] * raster.covered
        if not alpha.any():
            return None
        normals = self._normals(face, raster, texture, size)
        shade = light.shade(normals)
        albedo = lt.srgb_to_linear(rgba[..., :3])
        linear = albedo * shade[..., None]
        gloss = float(texture.params.get("gloss", 0.0))
        if gloss > 0:  # rubber and plastic catch a highlight; cloth and paper do not
            linear = linear + (gloss * light.highlight(normals))[..., None]
        colour = lt.linear_to_srgb(linear * light.white)
        if light.noise > 0:  # photo noise is mostly in luminance
            colour = colour + rng.normal(0.0, light.noise, colour.shape[:2])[..., None]

        layer = MaskLayer(raster.region, colour.astype(np.float32), alpha.astype(np.float32))
        if texture.straps:
            ears = ear_points().reshape(-1, 3) @ face.rotation.T * face.scale + face.translation
            layer = _grow(layer, ears[:, :2], image.shape, pad=int(3 * face.scale) + 2)
            self._draw_straps(layer, face, texture, pts, light)
        self._soften(layer, image, face)
        layer.info = {"lighting": light.as_dict(), "texture_size": size}
        return layer

    def estimate_lighting(self, image: np.ndarray, face: Face) -> lt.Lighting:
        """Light on ``face`` from its bare, camera-facing skin."""
        ref = reference()
        normals = ref.normals[ref.skin] @ face.rotation.T
        pts = face.mesh[ref.skin, :2]
        h, w = image.shape[:2]
        ok = (normals[:, 2] < -0.2) & (pts[:, 0] >= 0) & (pts[:, 0] < w)
        ok &= (pts[:, 1] >= 0) & (pts[:, 1] < h)
        return lt.estimate_lighting(image, pts[ok], normals[ok])

    def _normals(
        self, face: Face, raster: Raster, texture: MaskTexture, size: int
    ) -> np.ndarray:
        n = sample(self.normal_map(size), raster) @ face.rotation.T.astype(np.float32)
        # Relief from the texture (pleats, seams) tilts the normals: its height, converted to
        # image pixels, acts as a height field over the image plane.
        relief = sample(texture.height, raster) * (face.scale * CANVAS_CM / size)
        n[..., 0] -= cv2.Sobel(relief, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        n[..., 1] -= cv2.Sobel(relief, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        n /= np.maximum(np.linalg.norm(n, axis=2, keepdims=True), 1e-6)
        return n

    def _soften(self, layer: MaskLayer, image: np.ndarray, face: Face) -> None:
        sigma = self.edge_softness * max(1.0, face.scale / 12.0)
        layer.alpha = cv2.GaussianBlur(layer.alpha, (0, 0), sigma)
        if self.light_wrap <= 0:
            return
        x0, y0, x1, y1 = layer.region
        bg = image[y0:y1, x0:x1].astype(np.float32) / 255.0
        wrap_sigma = 1.5 * max(1.0, face.scale / 10.0)
        bg_blur = cv2.GaussianBlur(bg, (0, 0), wrap_sigma)
        inner = cv2.GaussianBlur(layer.alpha, (0, 0), wrap_sigma)
        w = (np.clip(1.0 - inner, 0, 1) * self.light_wrap)[..., None]
        layer.rgb = layer.rgb * (1 - w) + bg_blur * w

    def _draw_straps(
        self, layer: MaskLayer, face: Face, texture: MaskTexture, pts: np.ndarray,
        light: lt.Lighting,
    ) -> None:
        mm = mask_mesh()
        size = texture.rgba.shape[0]
        x0, y0 = layer.region[:2]
        cover = np.zeros(layer.alpha.shape, np.float32)
        paint = np.zeros(layer.rgb.shape, np.float32)
        head_on = light.shade(np.array([0.0, 0.0, -1.0])) * light.white
        for strap in texture.straps:
            right = strap.get("side", "right") == "right"
            # The far ear's strap runs behind the head once the face turns away from it.
            if (face.pose.yaw < -25 and not right) or (face.pose.yaw > 25 and right):
                continue
            hit = _locate(tuple(np.asarray(strap["anchor"], dtype=np.float64) / size))
            if hit is None:
                continue
            tri, w = hit
            start_ref = w @ mm.vertices[tri]
            target = strap_target(strap.get("kind", "ear_loop"), right, start_ref)
            curve = _strap_curve(start_ref, w @ pts[tri], target, face)
            colour = lt.linear_to_srgb(
                lt.srgb_to_linear(np.asarray(strap.get("color", (0.9, 0.9, 0.9)))) * head_on
            )
            width = max(1, round(float(strap.get("width_cm", 0.3)) * face.scale))
            # Paint in the strap's own window of the layer: a small fraction of it.
            lo = np.maximum(np.floor(curve[:, :2].min(axis=0) - (x0, y0)).astype(int) - width, 0)
            hi = np.ceil(curve[:, :2].max(axis=0) - (x0, y0)).astype(int) + width + 1
            win = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
            one = np.zeros_like(cover[win])
            if one.size == 0:
                continue
            poly = np.round((curve[:, :2] - (x0, y0) - lo) * 16).astype(np.int32)
            cv2.polylines(one, [poly], False, 1.0, width, cv2.LINE_AA, 4)
            paint[win] += one[..., None] * colour.astype(np.float32)
            cover[win] += one
        total = np.maximum(cover, 1e-6)[..., None]
        cover = np.minimum(cover, 1.0) * (1.0 - layer.alpha)  # under the mask where they meet
        layer.rgb += (paint / total - layer.rgb) * cover[..., None]
        layer.alpha = np.maximum(layer.alpha, cover)


def strap_target(kind: str, right: bool, start: np.ndarray) -> np.ndarray:
    """Where a strap leaving the mask at ``start`` (reference cm) meets the head."""
    ears = ear_points()[0 if right else 1]
    # Head straps pass above and below the ear on their way round the head; beyond these
    # points they are hidden by the head itself.
    if kind == "head_upper":
        return ears[0] + np.array([0.0, -1.2, 2.5])
    if kind == "head_lower":
        return ears[1] + np.array([0.0, 1.8, 1.5])
    return ears[0] if start[1] < (ears[0, 1] + ears[1, 1]) / 2 else ears[1]


def _grow(
    layer: MaskLayer, points: np.ndarray, image_shape: tuple[int, ...], pad: int
) -> MaskLayer:
    """The same layer over a region widened to hold ``points`` (clipped to the image)."""
    h, w = image_shape[:2]
    x0, y0, x1, y1 = layer.region
    lo = np.floor(points.min(axis=0)).astype(int) - pad
    hi = np.ceil(points.max(axis=0)).astype(int) + pad
    nx0, ny0 = max(min(x0, lo[0]), 0), max(min(y0, lo[1]), 0)
    nx1, ny1 = min(max(x1, hi[0]), w), min(max(y1, hi[1]), h)
    rgb = np.zeros((ny1 - ny0, nx1 - nx0, 3), np.float32)
    alpha = np.zeros((ny1 - ny0, nx1 - nx0), np.float32)
    rgb[y0 - ny0 : y1 - ny0, x0 - nx0 : x1 - nx0] = layer.rgb
    alpha[y0 - ny0 : y1 - ny0, x0 - nx0 : x1 - nx0] = layer.alpha
    return MaskLayer((nx0, ny0, nx1, ny1), rgb, alpha, layer.info)


@lru_cache(maxsize=4096)
def _locate(uv: tuple[float, float]) -> tuple[np.ndarray, np.ndarray] | None:
    """The mask-mesh triangle holding canvas point ``uv`` ([0, 1] units), with barycentric
    weights (cached: a style's strap anchors repeat from face to face)."""
    mm = mask_mesh()
    a, b, c = (mm.uv[mm.triangles[:, k]] for k in range(3))
    v0, v1, v2 = b - a, c - a, np.asarray(uv) - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    l0 = 1 - l1 - l2
    inside = (l0 >= -1e-6) & (l1 >= -1e-6) & (l2 >= -1e-6) & np.isfinite(l1)
    if not inside.any():
        return None
    k = int(np.flatnonzero(inside)[0])
    return mm.triangles[k], np.array([l0[k], l1[k], l2[k]])


def _strap_curve(
    start_ref: np.ndarray, start_img: np.ndarray, target: np.ndarray, face: Face,
    steps: int = 24,
) -> np.ndarray:
    """Image points of a strap from the mask edge to ``target``, bowing out from the cheek.

    The curve is built on the reference head and posed rigidly; near the mask it is shifted
    onto the mask's own (landmark-following) edge.
    """
    bow = np.array([np.sign(target[0]) * 0.8, 0.0, 0.0])
    ctrl = (start_ref + target) / 2 + bow
    t = np.linspace(0, 1, steps)[:, None]
    ref_curve = (1 - t) ** 2 * start_ref + 2 * (1 - t) * t * ctrl + t**2 * target
    img = ref_curve @ face.rotation.T * face.scale + face.translation
    return img + (1 - t) * (start_img - img[0])
