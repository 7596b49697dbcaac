"""medlabel: AI-assisted annotation of medical images."""

__version__ = "0.1.0"
