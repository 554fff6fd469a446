"""The fixtures the command tests share with the rooms whose commands they run: a dataset
server and a private cache (data), a trained run (export), an untrained run and its
classifier (serve)."""

from tests.data.conftest import http_server, isolated, tiny  # noqa: F401
from tests.export.conftest import relu_run  # noqa: F401
from tests.serve.conftest import classifier, untrained_run  # noqa: F401
