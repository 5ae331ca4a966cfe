"""The executable book: what the chapters in ``notebooks/`` are run and built with.

================  ==============================================================================
module            what it holds
================  ==============================================================================
``params``        chapter parameters: the profiles (smoke, cpu, paper), defaults, overrides and
                  their validation
``provenance``    where, when, with what code and on which hardware a chapter ran
``plotting``      the figures the chapters share, in one theme, and confidence intervals
``reproduction``  the documents' transcribed numbers and the verdict rule
``tables``        how every table is shown (whole cells, 3 significant figures, "—" for
                  missing, split when wide) and the verdict tables with their badges
``runner``        runs the chapters and builds the book (``python -m reprolib.book.runner``,
                  installed as ``reprolib-chapter``)
================  ==============================================================================

The book uses the library (:mod:`reprolib.attacks`, :mod:`reprolib.models`,
:mod:`reprolib.evaluation`, :mod:`reprolib.cache`); the library never imports the book
(``tests/test_architecture.py`` checks it). This package imports none of its modules.
"""
