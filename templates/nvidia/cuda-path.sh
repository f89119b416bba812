# CUDA {{version}} on the PATH of login shells (managed by zanuri)
case ":$PATH:" in
  *:/usr/local/cuda-{{version}}/bin:*) ;;
  *) PATH="/usr/local/cuda-{{version}}/bin${PATH:+:$PATH}"; export PATH ;;
esac
