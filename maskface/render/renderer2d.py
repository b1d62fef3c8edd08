"""The 2D renderer: a mask texture warped piecewise over the dense face mesh.

Every mesh triangle carries its own affine map from the texture canvas, so the mask follows
the nose, cheeks and jaw at any head pose; triangles turned away from the camera are dropped
and the rest drawn far to near, so the far cheek hides behind the nose at large yaw. The mask
is then lit with the light estimated on the skin, given the photo's white balance and noise,
and composited with soft edges and a little light wrap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from maskface.geometry.face import Face
from maskface.geometry.reference import reference
from maskface.render import lighting as lt
from maskface.render.layout import CANVAS_CM, ear_points, face_frame, mask_mesh
from maskface.render.raster import Raster, rasterize, sample
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


def project_mesh(face: Face) -> np.ndarray:
    """Image positions (V, 3) of every mask-mesh vertex: the face mesh plus the jaw rings."""
    mm = mask_mesh()
    ref = reference().mesh
    n = len(ref)
    pts = np.empty((len(mm.vertices), 3))
    pts[:n] = face.mesh[:n]
    parent = mm.parent[n:]
    offset = (mm.vertices[n:] - ref[parent]) @ face.rotation.T * face.scale
    pts[n:] = face.mesh[parent] + offset
    return pts


def _triangles_under(alpha: np.ndarray, uv_px: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Triangles whose canvas bounding box meets the drawn part of the texture."""
    ys, xs = np.nonzero(alpha > 1e-3)
    if len(xs) == 0:
        return triangles[:0]
    corners = uv_px[triangles]
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    keep = (hi[:, 0] >= xs.min()) & (lo[:, 0] <= xs.max() + 1)
    keep &= (hi[:, 1] >= ys.min()) & (lo[:, 1] <= ys.max() + 1)
    return triangles[keep]


class Renderer2D:
    """Warps style textures onto faces; see the module docstring."""

    name = "2d"

    def __init__(self, edge_softness: float = 0.6, light_wrap: float = 0.3) -> None:
        self.edge_softness = edge_softness
        self.light_wrap = light_wrap

    def render(
        self,
        image: np.ndarray,
        face: Face,
        texture: MaskTexture,
        rng: np.random.Generator,
        image_lin: np.ndarray | None = None,
    ) -> MaskLayer | None:
        """Render ``texture`` (drawn on a canvas of ``texture_size(face)``) onto ``face``.

        Returns None when no part of the mask is visible.
        """
        mm = mask_mesh()
        size = texture.rgba.shape[0]
        uv_px = mm.uv * size
        tris = _triangles_under(texture.rgba[..., 3], uv_px, mm.triangles)
        pts = project_mesh(face)
        raster = rasterize(pts[:, :2], pts[:, 2], uv_px, tris, image.shape)
        if raster is None:
            return None
        lin = lt.to_linear(image) if image_lin is None else image_lin
        light = self.estimate_lighting(image, face, lin)

        rgba = sample(texture.rgba, raster)
        alpha = rgba[..., 3] * raster.covered
        if not alpha.any():
            return None
        normals = self._normals(face, raster, texture, size)
        shade = light.shade(normals)
        albedo = lt.srgb_to_linear(rgba[..., :3])
        colour = lt.linear_to_srgb(albedo * shade[..., None] * light.white)
        if light.noise > 0:
            colour = colour + rng.normal(0.0, light.noise, colour.shape)

        layer = MaskLayer(raster.region, colour.astype(np.float32), alpha.astype(np.float32))
        if texture.straps:
            ears = ear_points() @ face.rotation.T * face.scale + face.translation
            layer = _grow(layer, ears[:, :2], image.shape, pad=int(face.scale) + 2)
            self._draw_straps(layer, face, texture, pts, ears, light)
        self._soften(layer, image, face)
        layer.info = {"lighting": light.as_dict(), "texture_size": size}
        return layer

    def estimate_lighting(self, image: np.ndarray, face: Face, lin: np.ndarray) -> lt.Lighting:
        """Light on ``face`` from its bare, camera-facing skin."""
        ref = reference()
        normals = ref.normals[ref.skin] @ face.rotation.T
        pts = face.mesh[ref.skin, :2]
        h, w = image.shape[:2]
        ok = (normals[:, 2] < -0.2) & (pts[:, 0] >= 0) & (pts[:, 0] < w)
        ok &= (pts[:, 1] >= 0) & (pts[:, 1] < h)
        return lt.estimate_lighting(image, pts[ok], normals[ok], lin)

    def _normals(
        self, face: Face, raster: Raster, texture: MaskTexture, size: int
    ) -> np.ndarray:
        mm = mask_mesh()
        n = raster.interpolate(mm.normals @ face.rotation.T)
        # Relief from the texture (pleats, seams) tilts the normals: its height, converted to
        # image pixels, acts as a height field over the image plane.
        relief = sample(texture.height, raster) * (face.scale * CANVAS_CM / size)
        gx = cv2.Sobel(relief, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(relief, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        n[..., 0] -= gx
        n[..., 1] -= gy
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
        ears: np.ndarray, light: lt.Lighting,
    ) -> None:
        mm = mask_mesh()
        size = texture.rgba.shape[0]
        for strap in texture.straps:
            right = strap.get("side", "right") == "right"
            # The far ear's strap runs behind the head once the face turns away from it.
            if (face.pose.yaw < -25 and not right) or (face.pose.yaw > 25 and right):
                continue
            start = _canvas_to_image(np.asarray(strap["anchor"]) / size, mm.uv, mm.triangles, pts)
            if start is None:
                continue
            ear = ears[0 if right else 1]
            curve = _strap_curve(start, ear, face)
            x0, y0 = layer.region[:2]
            colour = lt.linear_to_srgb(
                lt.srgb_to_linear(np.asarray(strap.get("color", (0.9, 0.9, 0.9))))
                * light.shade(np.array([0.0, 0.0, -1.0])) * light.white
            )
            width = max(1, round(float(strap.get("width_cm", 0.3)) * face.scale))
            poly = np.round((curve[:, :2] - (x0, y0)) * 16).astype(np.int32)
            cover = np.zeros(layer.alpha.shape, np.float32)
            cv2.polylines(cover, [poly], False, 1.0, width, cv2.LINE_AA, 4)
            # Straps lie under the mask where they meet it.
            cover *= 1.0 - layer.alpha
            layer.rgb = layer.rgb * (1 - cover[..., None]) + colour * cover[..., None]
            layer.alpha = np.maximum(layer.alpha, cover)


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


def _canvas_to_image(
    uv: np.ndarray, mesh_uv: np.ndarray, triangles: np.ndarray, pts: np.ndarray
) -> np.ndarray | None:
    """Image point (3,) of a canvas point given in [0, 1] units, via its mesh triangle."""
    a, b, c = (mesh_uv[triangles[:, k]] for k in range(3))
    v0, v1, v2 = b - a, c - a, uv - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    l0 = 1 - l1 - l2
    inside = (l0 >= -1e-6) & (l1 >= -1e-6) & (l2 >= -1e-6) & np.isfinite(l1)
    if not inside.any():
        return None
    k = int(np.flatnonzero(inside)[0])
    tri = triangles[k]
    return l0[k] * pts[tri[0]] + l1[k] * pts[tri[1]] + l2[k] * pts[tri[2]]


def _strap_curve(start: np.ndarray, ear: np.ndarray, face: Face, steps: int = 24) -> np.ndarray:
    """A loop from the mask edge to the ear, bowing outward from the cheek (image coords)."""
    mid = (start + ear) / 2
    # Bow away from the face: along the head's outward side direction.
    side = np.sign(ear[0] - face.translation[0]) or 1.0
    bow = face.rotation @ np.array([side * 0.6, 0.0, -0.3]) * face.scale
    ctrl = mid + bow
    t = np.linspace(0, 1, steps)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * ctrl + t**2 * ear
