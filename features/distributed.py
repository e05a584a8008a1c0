"""Run the per-resident feature function on Dask: `map_partitions` over resident partitions.

Each table is cut into the same resident ranges; partition k of every table and of the as-of
pairs goes to one call of the partition function, exactly as the pandas engine runs it. The
pipeline hands its partition function, splitter and history type in, so this engine depends on
no feature code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pandas as pd


def _partition_task(pairs: pd.DataFrame, *tables: pd.DataFrame, names: tuple[str, ...],
                    absent: tuple[str, ...], history_type: type, compute: Callable):
    history = history_type(**dict(zip(names, tables, strict=True)), **{n: None for n in absent})
    return compute(history, pairs)


@contextlib.contextmanager
def _client(scheduler: str | None):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        yield client


def build_features_dask(history, pairs: pd.DataFrame, n_parts: int, scheduler: str | None,
                        progress: Callable[[int, int], None] | None = None, *,
                        compute: Callable, split: Callable, meta: pd.DataFrame) -> pd.DataFrame:
    """Feature rows for `pairs`, computed on a Dask cluster (LocalCluster unless `scheduler`).

    `split(history, pairs, n)` cuts history and pairs into resident partitions; `compute(history,
    pairs)` is the partition function; `meta` is its empty output.
    """
    import dask.dataframe as dd
    from dask.distributed import as_completed

    parts = split(history, pairs, n_parts)
    names = tuple(n for n, df in history.tables().items() if df is not None)
    absent = tuple(n for n, df in history.tables().items() if df is None)

    with _client(scheduler) as client:
        # Ship each piece to the cluster once (futures), rather than embedding it in the graph.
        def collection(pieces: list[pd.DataFrame]) -> dd.DataFrame:
            meta = pieces[0].iloc[:0]
            return dd.from_delayed(client.scatter(pieces), meta=meta, verify_meta=False)

        pairs_dd = collection([p for _, p in parts])
        tables_dd = [collection([getattr(h, n) for h, _ in parts]) for n in names]
        out = dd.map_partitions(
            _partition_task, pairs_dd, *tables_dd, names=names, absent=absent,
            history_type=type(history), compute=compute, meta=meta, align_dataframes=False,
        )
        futures = client.compute(out.to_delayed())
        for done, _ in enumerate(as_completed(futures), start=1):
            if progress:
                progress(done, len(futures))
        return pd.concat(client.gather(futures), ignore_index=True)
