#!/usr/bin/env bash
# Run by `pulumi up` (components/aws/images.py, pulumi-command): build one image in CodeBuild
# and wait for it. Needs the AWS CLI v2 and the deployer's credentials (the same ones the
# kubeconfig's `aws eks get-token` uses).
#   env: PROJECT REGION REPOSITORY TAG IMAGE_URI SOURCE DOCKERFILE BUILD_ARGS
set -euo pipefail

# Immutable tags: a tag that exists is this content already (a rerun), nothing to build.
if aws ecr describe-images --region "$REGION" --repository-name "$REPOSITORY" \
     --image-ids "imageTag=$TAG" >/dev/null 2>&1; then
  echo "$IMAGE_URI exists; not rebuilt"
  exit 0
fi

build_id=$(aws codebuild start-build --region "$REGION" --project-name "$PROJECT" \
  --source-type-override S3 --source-location-override "$SOURCE" \
  --environment-variables-override \
    "name=IMAGE_URI,value=$IMAGE_URI,type=PLAINTEXT" \
    "name=DOCKERFILE,value=$DOCKERFILE,type=PLAINTEXT" \
    "name=BUILD_ARGS,value=${BUILD_ARGS:- },type=PLAINTEXT" \
  --query build.id --output text)
echo "building $IMAGE_URI in CodeBuild: $build_id" >&2

while true; do
  read -r status phase deep_link < <(aws codebuild batch-get-builds --region "$REGION" \
    --ids "$build_id" \
    --query 'builds[0].[buildStatus,currentPhase,logs.deepLink]' --output text)
  case "$status" in
    SUCCEEDED) echo "$IMAGE_URI built"; exit 0 ;;
    IN_PROGRESS) echo "$build_id: $phase" >&2; sleep 30 ;;
    *) echo "CodeBuild $build_id for $IMAGE_URI ended $status in phase $phase; logs: $deep_link" >&2
       exit 1 ;;
  esac
done
