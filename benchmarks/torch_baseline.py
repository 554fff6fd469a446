"""A plain PyTorch script of a lenet5 model: what `lenet5 train`'s defaults are measured against.

    python benchmarks/torch_baseline.py --dataset fashion-mnist --epochs 5

The same network (`lenet5.torch_twin` of `build_model(model, seed)`: the same layers and
initial weights), trained as a short PyTorch script usually is: Adam at PyTorch's default rate
(1e-3), batches of 64 reshuffled each epoch, no schedule, no augmentation, on all 60,000
training images (the lenet5 run holds 5,000 out for validation, so this side sees more data).
It prints the test accuracy after each epoch and the final one as JSON.
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    # One thread: on a shared 2-core machine two spin-waiting threads ran 25 times slower.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir")
    parser.add_argument("--train-limit", type=int, help="the first N training images only (a quick look)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from lenet5.data import load_dataset, preprocess
    from lenet5.torch_twin import torch_twin
    from lenet5.zoo.models import build_model, get_spec

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    spec = get_spec(args.model)
    dataset = load_dataset(args.dataset, data_dir=args.data_dir)
    prep = dict(method=spec.preprocessing.method, pad=spec.preprocessing.pad, mean=dataset.mean, std=dataset.std)
    count = args.train_limit or len(dataset.train_images)
    x_train = torch.from_numpy(preprocess(dataset.train_images[:count], **prep))
    y_train = torch.from_numpy(dataset.train_labels[:count].astype(np.int64))
    x_test = torch.from_numpy(preprocess(dataset.test_images, **prep))
    y_test = torch.from_numpy(dataset.test_labels.astype(np.int64))

    net = torch_twin(build_model(args.model, seed=args.seed), dtype=torch.float32)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def test_accuracy() -> float:
        net.eval()
        with torch.no_grad():
            correct = sum(int((net(x_test[i: i + 1000]).argmax(1) == y_test[i: i + 1000]).sum())
                          for i in range(0, len(x_test), 1000))
        return correct / len(x_test)

    seconds, history = 0.0, []
    for epoch in range(args.epochs):
        started = time.perf_counter()
        net.train()
        for index in torch.randperm(len(x_train)).split(args.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(net(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - started
        history.append(test_accuracy())
        print(f"epoch {epoch + 1}/{args.epochs}  test accuracy {history[-1] * 100:.2f}%  {seconds:.1f}s", flush=True)
    print(json.dumps({"model": args.model, "dataset": args.dataset, "epochs": args.epochs,
                      "batch_size": args.batch_size, "optimizer": "adam", "lr": args.lr, "seed": args.seed,
                      "test_accuracy": history[-1], "test_accuracy_per_epoch": history,
                      "train_seconds": seconds, "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
