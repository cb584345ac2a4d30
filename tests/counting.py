"""Small helpers the bridge tests share: one architecture's scores as ints,
its input shape, a model's parameter count."""
import nasflops as nf


def core(spec, convention, batch_size=1, **kw):
    """Every metric of the first architecture of ``spec``, as Python ints."""
    r = nf.score(spec, convention=convention, batch_size=batch_size, **kw)
    return {m: int(r[m][0]) for m in nf.METRICS}


def shape_of(recs):
    """(C, H, W) of a network's input record."""
    return int(recs[0]["out_channels"]), int(recs[0]["size_h"]), int(recs[0]["size_w"])


def n_params(model):
    return sum(p.numel() for p in model.parameters())
