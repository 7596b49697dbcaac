"""Pure array functions: the :class:`Volume` type, orientation, windowing and rendering."""

from medlabel.imaging.volume import Volume

__all__ = ["Volume"]
