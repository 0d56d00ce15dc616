"""privbias: privacy and fairness when adapting language models.

One small library behind four study notebooks: model and data registries
(:mod:`privbias_lib.models`, :mod:`privbias_lib.data`), and the building blocks
the studies share. Import submodules directly; this package stays light to import.
"""

__version__ = "0.1.0"
