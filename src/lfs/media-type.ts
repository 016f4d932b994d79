/** The media type of every Git LFS API request and answer, errors included (the client checks it). */
export const LFS_MEDIA_TYPE = 'application/vnd.git-lfs+json';
