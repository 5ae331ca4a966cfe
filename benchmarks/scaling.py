"""Time per image against batch size and image count, and peak memory, of reprolib's attacks:
the command line of :mod:`reprolib.evaluation.scaling`.

    python benchmarks/scaling.py --images 512 --batch-sizes 1 8 64 512 --counts 50 200 500 2000
"""
from reprolib.evaluation.scaling import main

if __name__ == "__main__":
    main()
