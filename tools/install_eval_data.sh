#!/usr/bin/env bash
# Installs the offline evaluation data sets from Debian's packages, where missing:
#   dataset-fashion-mnist (vision pretext evaluation), wordnet-base and python3.11-doc
#   (NLP pretext pre-training prose and the labelled gloss task), manpages and manpages-dev
#   (the man page section task that NLP encoders are fine-tuned on).
# A machine without apt (or without root) keeps going: the evaluations that need the
# data then say clearly that it is missing, and their tests are skipped with that reason.
set -u
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ -d /usr/share/wordnet ] || need+=(wordnet-base)
[ -d /usr/share/doc/python3.11/html/_sources ] || need+=(python3.11-doc)
[ -f /var/lib/dpkg/info/manpages.list ] || need+=(manpages)
[ -f /var/lib/dpkg/info/manpages-dev.list ] || need+=(manpages-dev)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
  echo "eval-data: cannot install ${need[*]} (no apt-get or not root); evaluations needing them will be skipped" >&2
  exit 0
fi
echo "eval-data: installing ${need[*]} from Debian"
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >/tmp/ssl_robot_eval_data.log 2>&1 \
  || echo "eval-data: apt-get failed (see /tmp/ssl_robot_eval_data.log); evaluations needing ${need[*]} will be skipped" >&2
exit 0
