"""The data tests' dataset fixtures, for the patch dataset built on the same manifests."""

from tests.data.conftest import make_dataset, write_manifest

__all__ = ["make_dataset", "write_manifest"]
