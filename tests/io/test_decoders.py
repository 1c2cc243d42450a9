"""What the decoders say when they cannot run: the nvdec fallback once a process, torchcodec's FFmpeg versions."""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.conftest import MakeVideo
from vidfit.io import VideoReader


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback taken without a GPU")
def test_the_nvdec_fallback_is_said_once_a_process(make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vidfit.io._decoders._NVDEC_FALLBACKS_SAID", set())
    first, _ = make_video("a.mkv", num_frames=4)
    second, _ = make_video("b.mkv", num_frames=4)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")  # the warnings module's own once-per-place must not be what hides them
        for path in (first, second, first):
            with VideoReader(path, backend="nvdec") as reader:
                assert reader.backend == "pyav"
    messages = [str(w.message) for w in said if "nvdec" in str(w.message)]
    assert messages == [f"backend='nvdec' unavailable (no CUDA device); decoding with 'pyav' ({first} and any "
                        "other video of this process)"]  # fmt: skip


# What torchcodec 0.17 raises where no FFmpeg it was built for is installed (shortened).
_NO_FFMPEG = """Could not load libtorchcodec. Likely causes:
          1. FFmpeg is not properly installed in your environment. We support
             versions 4, 5, 6, 7, 8, and 9, and we attempt to load libtorchcodec
[start of libtorchcodec loading traceback]
FFmpeg version 9:
OSError: libavutil.so.61: cannot open shared object file: No such file or directory
FFmpeg version 8:
OSError: libavutil.so.60: cannot open shared object file: No such file or directory
FFmpeg version 5:
OSError: libavutil.so.57: cannot open shared object file: No such file or directory
FFmpeg version 4:
OSError: libavutil.so.56: cannot open shared object file: No such file or directory
[end of libtorchcodec loading traceback]."""


class _Decoders:
    """torchcodec.decoders whose VideoDecoder cannot load FFmpeg."""

    @staticmethod
    def VideoDecoder(*args: object, **kwargs: object) -> None:  # noqa: N802 (torchcodec's name)
        raise RuntimeError(_NO_FFMPEG)


def test_torchcodec_without_ffmpeg_names_the_versions_it_supports(
    make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = make_video(num_frames=4)
    monkeypatch.setattr("vidfit.io._decoders.importlib.import_module", lambda name: _Decoders)
    with pytest.raises(ImportError) as caught:
        VideoReader(path, backend="torchcodec")
    message = str(caught.value)
    assert message.startswith("backend='torchcodec': torchcodec cannot load FFmpeg's shared libraries (Could not")
    assert "install FFmpeg 4, 5, 8 or 9 (apt install ffmpeg) or use backend='pyav'" in message, message
    assert "\n" not in message
