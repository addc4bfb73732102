"""What the pod tests share: a cri-runtime with a pause image and a host-only CNI network."""

from __future__ import annotations

from dataclasses import dataclass

from tests.cri_server import CriServer
from tests.rig.images import TestImages
from tests.rig.network import TestNetwork


@dataclass
class PodRig:
    server: CriServer
    network: TestNetwork
    images: TestImages
