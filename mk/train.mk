# train.mk - the data and training module's extra targets (included by the Makefile).
#   make bench-train        fmnist-cnn epoch and NB201 on Fashion-MNIST against PyTorch
#   make bench-train-long   plus the 5/20-epoch NB201 runs that set `make run`'s budget
.PHONY: bench-train bench-train-long
bench-train: build
	@bench/bench_train.sh --nb201

bench-train-long: build
	@bench/bench_train.sh --long
