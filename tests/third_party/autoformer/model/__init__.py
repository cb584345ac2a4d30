# Vendored from microsoft/Cream, AutoFormer/model/__init__.py (commit 4a13c409), MIT licence
# (Copyright (c) Microsoft Corporation; see LICENSE beside this file).
