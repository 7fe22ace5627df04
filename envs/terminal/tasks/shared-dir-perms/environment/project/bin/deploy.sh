#!/bin/sh
echo "deploying $(basename "$PWD")"
