"""Evaluation protocols: which images to compare, unmasked and masked.

* :func:`lfw_protocols`: LFW View 2 / View 1 from the official pairs files;
* :func:`dataset_pairs`: any dataset's own pairs file (MFR2's), split by real mask labels;
* :func:`reference_probe`: one reference, one genuine and one impostor probe per identity;
* :func:`identity_pairs`: seeded same/different pairs for any dataset with identities.

Each returns one :class:`Protocol` per configuration (``unmasked-unmasked`` and, given a
:class:`MaskedCopy`, ``masked-unmasked``, ``unmasked-masked``, ``masked-masked``);
:func:`write_protocols` writes them as commented CSV files (format in
:mod:`maskface.protocols.base`).
"""

from __future__ import annotations

from maskface.protocols.base import (
    COLUMNS,
    CONFIGURATIONS,
    PairRow,
    Protocol,
    configurations,
    protocol_identities,
    read_protocol,
    write_protocols,
)
from maskface.protocols.dataset_pairs import dataset_pairs
from maskface.protocols.lfw import lfw_protocols
from maskface.protocols.masked import MaskedCopy
from maskface.protocols.pairs import identity_pairs
from maskface.protocols.reference_probe import reference_probe

__all__ = [
    "COLUMNS",
    "CONFIGURATIONS",
    "MaskedCopy",
    "PairRow",
    "Protocol",
    "configurations",
    "dataset_pairs",
    "identity_pairs",
    "lfw_protocols",
    "protocol_identities",
    "read_protocol",
    "reference_probe",
    "write_protocols",
]
