"""reprolib's attacks against Foolbox, ART and torchattacks: the command line of
:mod:`reprolib.evaluation.peers` (see its docstring for every pair, setting and known difference).

    python benchmarks/peers.py --models cw_mnist --images 10 --pairs fgsm pgd_linf
"""
from reprolib.evaluation.peers import main

if __name__ == "__main__":
    main()
