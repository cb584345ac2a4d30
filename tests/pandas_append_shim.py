"""Re-add ``pandas.DataFrame.append`` (removed in pandas 2.0) for torchstat 0.0.7.

torchstat's reporter.py calls it exactly once:

    total_df = pd.Series([...8 numbers...], index=[8 of the 11 column names], name='total')
    df = df.append(total_df)

i.e. the "named Series, ignore_index=False, verify_integrity=False, sort=False" path.
This is a line-for-line port of pandas 1.5.3 ``DataFrame._append`` onto public API
(``Series.to_frame().T.infer_objects()`` then ``pd.concat``), so the row, its index
label 'total', the column union/order and the resulting dtypes (int64 columns become
float64 because the appended row has NaN for the three text columns and is float64)
are the same as under pandas 1.x.  Import this module (or call ``install()``) before
``torchstat.stat``.  It is a no-op when ``DataFrame.append`` already exists.
"""
import pandas as pd


def _append(self, other, ignore_index=False, verify_integrity=False, sort=False):
    if isinstance(other, (pd.Series, dict)):
        if isinstance(other, dict):
            if not ignore_index:
                raise TypeError("Can only append a dict if ignore_index=True")
            other = pd.Series(other)
        if other.name is None and not ignore_index:
            raise TypeError("Can only append a Series if ignore_index=True "
                            "or if the Series has a name")
        index = pd.Index([other.name], name=self.index.name)
        row_df = other.to_frame().T
        other = row_df.infer_objects().rename_axis(index.names)
    elif isinstance(other, list):
        if not other:
            pass
        elif not isinstance(other[0], pd.DataFrame):
            other = pd.DataFrame(other)
            if self.index.name is not None and not ignore_index:
                other.index.name = self.index.name
    if isinstance(other, (list, tuple)):
        to_concat = [self, *other]
    else:
        to_concat = [self, other]
    return pd.concat(to_concat, ignore_index=ignore_index,
                     verify_integrity=verify_integrity, sort=sort)


def install():
    if not hasattr(pd.DataFrame, "append"):
        pd.DataFrame.append = _append
        return True
    return False


INSTALLED = install()
