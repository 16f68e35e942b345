"""Helpers shared by the tests (not tests themselves): tiny models and images (``helpers``),
foreign-format checkpoints (``checkpoint_builders``, ``reference_fixtures``), a loopback HTTP
server (``local_http``), a NumPy TF.js graph executor (``tfjs_numpy``) and the training worker run
in a fresh process (``training_worker``). Import them as ``from tests.support.helpers import ...``."""
