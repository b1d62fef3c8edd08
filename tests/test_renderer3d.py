"""The 3D renderer's mask surface: standing off the face, bridging hollows, lit like the photo."""

from __future__ import annotations

import numpy as np

import maskface
from maskface.geometry.reference import NOSE_TIP
from maskface.render.layout import mask_mesh
from maskface.render.renderer3d import _THICKNESS_CM, Renderer3D, mask_surface

ALAR_CREASE = (129, 358)  # beside the nostrils: the deepest hollow a mask spans


def test_surface_keeps_its_thickness_and_bridges_hollows():
    mm = mask_mesh()
    surf, normals = mask_surface()
    lift = np.einsum("ij,ij->i", surf - mm.vertices, mm.normals)
    assert lift.min() >= _THICKNESS_CM - 1e-6  # never closer to the skin than the fabric
    # Beside the nose the cloth stands well off the skin; on the nose tip it lies on it.
    assert all(lift[i] > 3 * _THICKNESS_CM for i in ALAR_CREASE)
    assert lift[NOSE_TIP] < 1.5 * _THICKNESS_CM
    # Vertices only move along the skin normal, so the texture stays where it was.
    drift = (surf - mm.vertices) - lift[:, None] * mm.normals
    assert np.abs(drift).max() < 1e-6
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0)


def test_posed_surface_lies_in_front_of_the_face(astronaut):
    face = maskface.detect_faces(astronaut)[0]
    pts = Renderer3D().project(face)
    # z grows away from the camera: the mask is nearer than the skin under it.
    nose = pts[NOSE_TIP, 2] - face.mesh[NOSE_TIP, 2]
    crease = pts[list(ALAR_CREASE), 2] - face.mesh[list(ALAR_CREASE), 2]
    assert nose < 0 and np.all(crease < nose)


def test_3d_differs_from_2d_and_is_deterministic(astronaut):
    a = maskface.mask_image(astronaut, "kn95", renderer="3d", seed=2)
    b = maskface.mask_image(astronaut, "kn95", renderer="3d", seed=2)
    flat = maskface.mask_image(astronaut, "kn95", renderer="2d", seed=2)
    assert np.array_equal(a.image, b.image)
    assert a.faces[0]["renderer"] == "3d"
    both = (a.alpha == 255) & (flat.alpha == 255)
    diff = np.abs(a.image.astype(int) - flat.image.astype(int))[both].mean()
    assert diff > 1.0  # the surface, hence shading and placement, is not the skin's
