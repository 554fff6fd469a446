"""`lenet5 gradcheck --model NAME`: a model's backward pass against finite differences."""

from __future__ import annotations

import numpy as np

from ..zoo.models import MODELS, get_spec
from .arguments import positive_float, positive_int, seed


def register(subparsers) -> None:
    parser = subparsers.add_parser("gradcheck", help="check a model's backward pass by finite differences")
    parser.add_argument("--model", default="lenet5", help=f"one of: {', '.join(MODELS)}")
    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--entries", type=positive_int, default=10, help="entries checked per parameter array")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--tolerance", type=positive_float, default=1e-6)
    parser.set_defaults(handler=gradcheck_command)


def gradcheck_command(args) -> int:
    from ..nn import check_model
    from ..zoo.models import build_model

    spec = get_spec(args.model)
    model = build_model(args.model, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch_size,) + spec.input_shape)
    errors = check_model(model, x, seed=args.seed, max_entries=args.entries)
    worst = max(errors.values())
    width = max(map(len, errors))
    print(f"gradient check of {args.model} in float64: backward vs 5-point central differences "
          f"of sum(logits * G), random G, {args.entries} entries per array")
    for name, error in errors.items():
        verdict = "ok" if error < args.tolerance else "FAIL"
        print(f"  {name.ljust(width)}  {error:.2e}  {verdict}")
    passed = worst < args.tolerance
    print(f"{'passed' if passed else 'FAILED'}: largest relative error {worst:.2e} (tolerance {args.tolerance:g})")
    return 0 if passed else 1
